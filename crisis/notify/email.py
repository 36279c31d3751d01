"""SMTP email: STARTTLS (or implicit TLS), optional login, one timeout for every socket operation.

Written on smtplib rather than through Apprise's email plugin (apprise 2.3.0): Apprise invents a random
Message-ID, so a redelivery after a crash could not be recognised as the same mail, and it reports only
True/False where `crisis notify test` must show what the server answered. Here the Message-ID derives from
the dedupe key, and the receipt is the server's reply to DATA.

Configured by URL: `smtp://user:password@host:587?from=crisis@example.org` (STARTTLS required),
`smtps://…:465` (implicit TLS), `smtp+insecure://host:25` (plain, for a local relay only); `cafile=PATH`
trusts a private CA.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate
from urllib.parse import parse_qs, unquote, urlsplit

from crisis.errors import InputError
from crisis.notify.channels import Delivery, DeliveryError


class SmtpChannel:
    name = "email"

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps", "smtp+insecure") or not parts.hostname:
            raise InputError(f"not an SMTP URL: {parts.scheme}://{parts.hostname or ''}", field="CRISIS_SMTP_URL")
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.scheme, self.host = parts.scheme, parts.hostname
        self.port = parts.port or (465 if parts.scheme == "smtps" else 587)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = q.get("from") or (f"{self.user}" if self.user and "@" in self.user else f"crisis@{self.host}")
        self.context = ssl.create_default_context(cafile=q.get("cafile"))
        self.timeout = timeout

    def mail(self, d: Delivery) -> EmailMessage:
        to = d.person.contacts.get("email") if d.person else None
        if not to:
            raise DeliveryError(f"{d.recipient} has no email address in the roster")
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.sender, to, d.subject
        msg["Date"] = formatdate(d.created_at.timestamp(), usegmt=True)
        msg["Message-ID"] = f"<{hashlib.sha256(d.dedupe_key.encode()).hexdigest()[:32]}@crisis>"
        msg.set_content(d.text)
        return msg

    def _connect(self) -> smtplib.SMTP:
        if self.scheme == "smtps":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.context)
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        smtp.ehlo()
        if self.scheme == "smtp":  # STARTTLS is required: never send credentials or pages in clear
            if not smtp.has_extn("starttls"):
                smtp.close()
                raise DeliveryError(f"{self.host} does not offer STARTTLS")
            smtp.starttls(context=self.context)
            smtp.ehlo()
        return smtp

    def deliver(self, message: Delivery) -> str:
        mail = self.mail(message)
        try:
            smtp = self._connect()
            try:
                if self.user:
                    smtp.login(self.user, self.password or "")
                code, reply = smtp.mail(self.sender)
                if code == 250:
                    code, reply = smtp.rcpt(mail["To"])
                if code in (250, 251):
                    code, reply = smtp.data(mail.as_bytes(policy=SMTP_POLICY))
                if code != 250:
                    raise DeliveryError(f"refused: {code} {reply.decode(errors='replace')}")
            finally:
                smtp.close()
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        return f"accepted by {self.host} for {mail['To']} ({code} {reply.decode(errors='replace')})"
