"""
The errors the tool reports as one line: the command line prints the message on
stderr and exits non-zero; the notebook API (mask.explain) raises them.
"""


class UserError(Exception):
    """A problem the user can fix: bad text, an unusable model, an unwritable file."""


class OfflineError(UserError):
    """A Hub model that is not cached, with no connection to download it."""


class BrokenCacheError(OfflineError):
    """
    A Hub model whose copy in the Hugging Face cache is broken (a truncated weight
    file, a missing config.json): unusable until it is downloaded again.
    """

    def __init__(self, name, folder, reason):
        super().__init__(
            f"The Hugging Face cache's copy of {name} is broken ({reason}). "
            f"Delete {folder} and run again with a network connection to download it afresh."
        )
        self.folder, self.reason = folder, reason


class WriteError(UserError, OSError):
    """
    An output file that could not be written; the message names the user's file,
    never a temporary one. Also an OSError, for code that catches those.
    """

    def __init__(self, path, reason):
        super().__init__(f"Cannot write {path}: {reason}")
        self.path = path
