"""All tables. Import models from here so Alembic and the app see the same metadata."""
from .base import Base, utcnow
from .people import Context, Membership, ResourceLink, User
from .registrations import Deployment, Registration, ToolKey
from .roster import AccessToken, ContextSyncState, RosterSync
from .security import UsedNonce
from .sessions import PageSession

__all__ = ["Base", "utcnow", "Registration", "Deployment", "ToolKey", "User", "Context",
           "Membership", "ResourceLink", "UsedNonce", "RosterSync",
           "ContextSyncState", "AccessToken", "PageSession"]
