"""Imported by the fork server of a local cluster before it forks the workers
(:data:`compactor.cluster.local.WORKER_PRELOAD`): the SSIM kernel, compiled here or loaded
from numba's cache once, is in every worker from its first task instead of costing each
worker that time in its first check."""

from ..fidelity.ssim import warm

warm()
