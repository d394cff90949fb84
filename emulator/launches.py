"""Pending launches (facts sheet, section 2) and their id_tokens (section 3).

Mixed into ``Platform``: ``resource_link_launch`` / ``deep_linking_launch`` build the
claim template and the login initiation parameters; ``issue_id_token`` signs the
token when the tool's auth request arrives, applying the launch's options.
"""

import secrets
import time

import jwt

from . import claims as claims_mod
from . import constants as C
from . import tokens
from .models import Launch


class LaunchMixin:
    # Canvas's web pages always name their storage frame (section 10); None leaves it out, as
    # Canvas's mobile apps and most other platforms do. Per launch: ``storage_target=``.
    storage_target = "post_message_forwarding"

    def resource_link_launch(self, tool, user, course, deployment_id=None, roles=None,
                             resource_link=None, placement=None, privacy_level=None, ags=True,
                             nrps=True, claims=None, remove=(), header=None, alg="RS256",
                             sign_with=None, clock_offset=0, tamper=False, raw_token=None,
                             message_type="LtiResourceLinkRequest", lineitem=None, custom=None,
                             target_link_uri=None, storage_target=...):
        """A pending launch. ``custom``: parameters over the tool's custom fields (a
        deep-linked item's, variables expanded); ``target_link_uri``: the URL launched
        (a content item's url, a SpeedGrader submission URL); ``lineitem``: id or URL;
        ``storage_target``: the ``lti_storage_target`` sent, None for none (default: the
        platform's ``storage_target``)."""
        launch_id = secrets.token_urlsafe(12)
        deployment_id = deployment_id or tool.deployment_ids[0]
        dl_data = jwt.encode({"launch": launch_id}, self.secret, "HS256")
        template = claims_mod.build_template(
            self, tool, user, course, message_type=message_type, deployment_id=deployment_id,
            roles=roles, resource_link=resource_link, placement=placement,
            privacy_level=privacy_level, ags=ags, nrps=nrps, lineitem=lineitem, dl_data=dl_data)
        if custom:
            template[C.CUSTOM] = {**template.get(C.CUSTOM, {}),
                                  **claims_mod.expand_custom(custom, user, course)}
        if target_link_uri:
            template[C.TARGET_LINK_URI] = target_link_uri
        template = tokens.merge(template, claims)
        for key in remove or ():
            template.pop(C.full_claim(key), None)
        launch = Launch(self, launch_id, tool, user, course, deployment_id, template,
                        claims, remove, dict(header=header, alg=alg, sign_with=sign_with,
                                             clock_offset=clock_offset, tamper=tamper,
                                             raw_token=raw_token))
        link = template.get(C.RESOURCE_LINK)
        if course is not None and isinstance(link, dict) and isinstance(link.get("id"), str) and link["id"]:
            with self.lock:
                course.links.setdefault(link["id"], None)
        launch.login_params = {
            "iss": self.issuer,
            "login_hint": user.login_hint,
            "target_link_uri": template.get(C.TARGET_LINK_URI) or tool.target_link_uri,
            "client_id": tool.client_id,
            "lti_deployment_id": deployment_id,
            "deployment_id": deployment_id,
            "lti_message_hint": self._message_hint(launch, course),
            "canvas_region": "us-east-1",
            "canvas_environment": "prod",
        }
        if storage_target is ...:
            storage_target = self.storage_target
        if storage_target:
            launch.login_params["lti_storage_target"] = storage_target
        with self.lock:
            self.launches[launch_id] = launch
        return launch

    def deep_linking_launch(self, tool, user, course, placement="assignment_selection", **kw):
        kw.setdefault("message_type", "LtiDeepLinkingRequest")
        return self.resource_link_launch(tool, user, course, placement=placement, **kw)

    def _message_hint(self, launch, course):
        """Opaque signed JWT (section 2: Canvas signs it, 5 minutes)."""
        now = int(time.time())
        body = {"verifier": launch.id, "canvas_domain": "127.0.0.1", "context_type": "Course",
                "context_id": course.course_id if course else None, "iat": now}
        if self.message_hint_ttl:
            body["exp"] = now + self.message_hint_ttl
        return jwt.encode(body, self._hint_secret, "HS256")

    def launch_for_hint(self, hint):
        """The pending launch a lti_message_hint names, or None if unknown/expired."""
        try:
            body = jwt.decode(hint, self._hint_secret, algorithms=["HS256"])
        except jwt.PyJWTError:
            return None
        return self.launches.get(body.get("verifier"))

    def issue_id_token(self, launch, nonce):
        """Build and sign the id_token for ``launch`` applying its options (section 3)."""
        if launch.raw_token is not None:
            token = launch.raw_token
        else:
            payload = tokens.build_id_token_payload(launch, nonce)
            token = tokens.encode(
                payload, key=self.keys.current_key, kid=self.keys.current_kid, alg=launch.alg,
                header=launch.header, sign_with=launch.sign_with,
                hs_secret=self.keys.public_pem(), tamper=launch.tamper)
        with self.lock:
            launch.id_tokens.append(token)
        return token
