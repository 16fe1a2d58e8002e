"""The error of a chaos run that could not be carried out."""


class ChaosError(RuntimeError):
    """The run could not be carried out (a component did not start, the job died for good, no recovery)."""
