"""cvlab: build, boot and tear down the cosyvoice.cluster test lab."""


class LabError(Exception):
    """An error the operator can act on; printed without a traceback."""
