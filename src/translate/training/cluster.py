"""Where a process sits in a multi-process job, read from the launcher's environment: torchrun's variables
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) or, when torchrun did not start
it, SLURM's (one process per task: ``srun``, or submitit's launcher).

No torch here: ``translate-train`` reads it before deciding whether to load torch.distributed at all.
"""

from __future__ import annotations

import os
import re
from typing import Dict, Mapping, MutableMapping

from translate.errors import DeviceError

#: The port rank 0 listens on under SLURM when MASTER_PORT is not set: the same in every task of a job (it is
#: derived from the job id), and different for jobs that share a first node.
SLURM_PORT_BASE, SLURM_PORT_SPAN = 20000, 20000


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: ``gpu[003-005,010],cpu1`` -> ``gpu003``, ``node7`` -> ``node7``."""
    head = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if head is None:
        raise DeviceError(f"SLURM_JOB_NODELIST={nodelist!r} names no host; set MASTER_ADDR to the first node's address")
    prefix, ranges = head.group(1), head.group(2)
    return prefix + ranges.split(",")[0].split("-")[0] if ranges else prefix


def slurm_env(environ: Mapping[str, str]) -> Dict[str, str]:
    """torchrun's variables for a process that SLURM started as one of several tasks; {} when torchrun already
    set them, or when SLURM describes a single task (or no job at all)."""
    if "WORLD_SIZE" in environ or int(environ.get("SLURM_NTASKS", "1")) <= 1 or "SLURM_PROCID" not in environ:
        return {}
    nodelist = environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST")
    if not nodelist and not environ.get("MASTER_ADDR"):
        raise DeviceError(
            f"SLURM_NTASKS={environ['SLURM_NTASKS']} but neither SLURM_JOB_NODELIST nor SLURM_NODELIST is set; "
            "start translate-train with srun inside the job, or set MASTER_ADDR"
        )
    job_id = int(environ.get("SLURM_JOB_ID", "0"))
    return {
        "RANK": environ["SLURM_PROCID"],
        "WORLD_SIZE": environ["SLURM_NTASKS"],
        "LOCAL_RANK": environ.get("SLURM_LOCALID", "0"),
        "MASTER_ADDR": environ.get("MASTER_ADDR") or first_host(nodelist or ""),
        "MASTER_PORT": environ.get("MASTER_PORT") or str(SLURM_PORT_BASE + job_id % SLURM_PORT_SPAN),
    }


def adopt_slurm_env(environ: MutableMapping[str, str] = os.environ) -> None:
    """Give a SLURM task torchrun's variables, so that every code path reads one set of them."""
    environ.update(slurm_env(environ))


def world_size() -> int:
    """How many processes the launcher started for this job (1 without torchrun or a multi-task SLURM step)."""
    adopt_slurm_env()
    return int(os.environ.get("WORLD_SIZE", "1"))
