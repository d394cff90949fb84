"""Everything LTI: the only package that imports pylti1p3.

The rest of the tool sees ``Launch`` (typed claims), the errors in ``errors`` and these functions.
"""
from .claims import Launch
from .errors import DeploymentNotFound, LaunchError, LoginError, PlatformError, RegistrationNotFound
from .launch import LaunchSettings, validate_launch
from .login import LoginRedirect, begin_login
from .platform_keys import PlatformKeyCache

__all__ = ["Launch", "LaunchSettings", "validate_launch", "begin_login", "LoginRedirect",
           "PlatformKeyCache", "LaunchError", "LoginError", "PlatformError", "RegistrationNotFound",
           "DeploymentNotFound"]
