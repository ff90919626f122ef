"""Exceptions raised by allsky_camera.

Every error that a user can cause (a bad file, a bad configuration, an
unwritable directory, a sky with nothing to measure) is raised as a subclass of
:class:`AllskyError`.  Its message is one line that names the file or value,
says what is wrong and what to change.  ``ac_proc.py`` prints that line on
stderr and exits with status 2; no traceback is shown.
"""


class AllskyError(Exception):
    """Base class of every error the pipeline reports to its user."""


class InputFileError(AllskyError):
    """The input exposure cannot be read or is not usable."""


class ConfigError(AllskyError):
    """A camera configuration is missing, malformed or inconsistent."""


class OutputError(AllskyError):
    """An output cannot be written (directory, permissions, existing file)."""


class SkyError(AllskyError):
    """The sky in the exposure does not allow the requested measurement."""
