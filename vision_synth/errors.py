"""User-facing errors: one line that names the file and the key or record, shown without traceback."""


class VisionSynthError(Exception):
    """Bad input from the user (config, dataset, files). The CLI prints it and exits with `exit_code`."""

    exit_code = 2


class ConfigError(VisionSynthError):
    """A config file that does not validate; the message names the file and the key path."""


class DatasetError(VisionSynthError):
    """A malformed dataset (COCO json, image files); the message names the file and the record."""
