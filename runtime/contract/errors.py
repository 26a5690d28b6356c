"""The runtime's two exception types. Both are ValueErrors, so callers that already catch bad values
catch these too, and the `edgevae` CLI prints them as one line with a non-zero exit."""


class ModelDirError(ValueError):
    """A model dir that cannot be used: missing or malformed manifest, unknown format or variant,
    a missing file, a sha256 that does not match, or a graph whose inputs/outputs differ from the manifest."""


class InputError(ValueError):
    """An argument the runtime refuses: wrong shape or dtype, NaN/inf, images outside [0, 1], an empty
    batch, a latent of the wrong size, or a count that is not a positive integer."""
