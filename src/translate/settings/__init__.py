"""What each command runs with: the typed configs (:mod:`.schema`, no torch) and their one validation (:mod:`.validate`)."""
