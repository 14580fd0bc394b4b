"""Queue names, kept in one place."""

SMS = "sms-notifications"
EMAIL = "email-digests"
DEFAULT = "default"

ALL = (SMS, EMAIL, DEFAULT)
