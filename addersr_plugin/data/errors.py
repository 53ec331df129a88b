"""The one error type of the data tools, so the CLI can print it without a traceback."""


class DatasetError(ValueError):
    """A dataset on disk (or a request to build one) is missing, incomplete or inconsistent."""
