"""Where alerts go: a webhook (企业微信 / 钉钉 robot, or our own JSON) and e-mail over SMTP."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import httpx

from .config import Channels, reference


class ChannelError(RuntimeError):
    pass


def _webhook_body(fmt: str, subject: str, body: str, payload: dict) -> dict:
    if fmt in ("wecom", "dingtalk"):      # both robots take {"msgtype": "text", "text": {"content": …}}
        return {"msgtype": "text", "text": {"content": f"{subject}\n{body}"}}
    return {**payload, "subject": subject, "text": body}


def send(channels: Channels, subject: str, body: str, payload: dict, timeout_s: float = 10) -> list[str]:
    """Send one message on every enabled channel; returns the channel names used.

    Raises ChannelError naming every channel that failed (the caller retries on its next round).
    """
    used, errors = [], []
    hook = channels.webhook
    if hook.enabled:
        url = reference(hook.url)
        try:
            if not url:
                raise ChannelError(f"webhook url {hook.url!r} is not set")
            resp = httpx.post(url, json=_webhook_body(hook.format, subject, body, payload), timeout=timeout_s,
                              trust_env=False)
            resp.raise_for_status()
            used.append("webhook")
        except (httpx.HTTPError, ChannelError) as exc:
            errors.append(f"webhook: {type(exc).__name__}: {exc}")
    mail = channels.email
    if mail.enabled:
        try:
            _send_mail(mail, subject, body, timeout_s)
            used.append("email")
        except (OSError, smtplib.SMTPException, ChannelError) as exc:
            errors.append(f"email: {type(exc).__name__}: {exc}")
    if errors:
        raise ChannelError("; ".join(errors))
    return used


def _send_mail(mail, subject: str, body: str, timeout_s: float) -> None:
    if not mail.recipients:
        raise ChannelError("email.recipients is empty")
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = mail.sender
    msg["To"] = ", ".join(mail.recipients)
    msg.set_content(body, charset="utf-8")
    with smtplib.SMTP(mail.smtp_host, mail.smtp_port, timeout=timeout_s) as smtp:
        if mail.starttls:
            smtp.starttls()
        user, password = reference(mail.username), reference(mail.password)
        if user:
            smtp.login(user, password or "")
        smtp.send_message(msg)
