"""Alert outputs: incidents and per-flow verdicts in the formats and places a security team
already uses.

- :mod:`~flowsentinel.alerts.eve`: Suricata EVE JSON (``alert``, ``flow`` and ``stats``
  records), which Filebeat's Suricata module, Evebox and most SIEMs read as they are;
- :mod:`~flowsentinel.alerts.ecs`: Elastic Common Schema documents;
- :mod:`~flowsentinel.alerts.sinks`: where they go (a rotated JSON-lines file, syslog over UDP
  or TCP, an HTTP webhook), each behind a bounded queue whose undeliverable records are spooled
  to disk and replayed, never dropped silently;
- :mod:`~flowsentinel.alerts.families`: what the two formats share (signature ids, severity,
  MITRE ATT&CK technique of each attack family).
"""
