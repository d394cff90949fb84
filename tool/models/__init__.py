"""All tables. Import models from here so Alembic and the app see the same metadata."""
from .base import Base, utcnow
from .people import Context, Membership, ResourceLink, User
from .registrations import Deployment, Registration, RegistrationInvite, RegistryVersion, ToolKey
from .roster import AccessToken, ContextSyncState, RosterSync
from .security import UsedNonce
from .sessions import PageSession
from .grading import Assessment, Attempt, GradeChange, PlatformResult, ScoreDelivery, ServiceSlot
from .workers import JobWorker
from .states import AttemptStatus, DeliveryStatus, QuestionKind, ScoringPolicy, SyncStatus

__all__ = ["Base", "utcnow", "Registration", "Deployment", "ToolKey", "RegistrationInvite", "RegistryVersion", "User", "Context",
           "Membership", "ResourceLink", "UsedNonce", "RosterSync",
           "ContextSyncState", "AccessToken", "PageSession", "Assessment", "Attempt", "GradeChange", "PlatformResult",
           "ScoreDelivery", "ServiceSlot", "AttemptStatus", "DeliveryStatus", "QuestionKind",
           "ScoringPolicy", "SyncStatus", "JobWorker"]
