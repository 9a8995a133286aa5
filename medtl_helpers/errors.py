"""Exceptions the course raises on bad input.

Every message names the file or setting at fault and says how to fix it, so a student sees one
clear sentence instead of a traceback from deep inside torch.
"""

from __future__ import annotations


class MedtlError(Exception):
    """Base class: a problem the user can fix, described in words."""


class DataError(MedtlError):
    """A data folder, image or file that cannot be used as it is."""


class ChecksumError(DataError):
    """A downloaded or cached file whose MD5 differs from the published one."""


class DownloadError(DataError):
    """A download that failed or was cut off."""


class UnsafeArchiveError(DataError):
    """An archive member that would be written outside the target folder."""


class CheckpointError(MedtlError):
    """A checkpoint that is truncated, unsafe, or made for another model."""


class WeightsUnavailableError(MedtlError):
    """ImageNet weights that are neither cached nor downloadable."""


class DeviceError(MedtlError, RuntimeError):
    """A device that was asked for but is not there (no GPU, or a name torch does not know)."""
