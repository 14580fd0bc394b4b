"""Queue names and priority bands, kept in one place."""

SMS = "sms-notifications"
EMAIL = "email-digests"
DEFAULT = "default"
HOUSEKEEPING = "housekeeping"

# Queues a client may defer jobs to.
ALL = (SMS, EMAIL, DEFAULT)

# Priorities a client may set; the band above is Howdah's own urgent work.
CLIENT_PRIORITY_MIN = -100
CLIENT_PRIORITY_MAX = 100
URGENT_PRIORITY = 1000
