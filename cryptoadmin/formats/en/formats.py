"""How the admin writes times: with their timezone ("2026-11-23 09:00:05 UTC"), the date in
ISO order, so no operator wonders whose 9 o'clock a deposit arrived at."""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s T"
