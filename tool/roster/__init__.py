"""The course roster: provisioning from launches and keeping it in step through NRPS."""
