"""The package root: `import translate` stays light, and nothing below imports it back."""

from __future__ import annotations

import grimp


def test_no_module_imports_the_package_root():
    # translate/__init__.py reaches translate.inference (lazily, for translate.load); a module below that
    # imported the root (say for __version__, which lives in translate.version) would close an import cycle
    # that the layers contract cannot see, since the root sits in no layer.
    graph = grimp.build_graph("translate")
    assert graph.find_modules_that_directly_import("translate") == set()
