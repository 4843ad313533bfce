"""newswatch: streaming news-monitoring alerts.

RSS/Atom feeds are matched against YAML watch-rules and the matches delivered, deduplicated
and explained, to Slack or e-mail. Layers, lowest first (imports only point down):
``newswatch.core`` ← ``newswatch.rules`` ← ``newswatch.monitor`` ← ``newswatch.streams`` ←
``newswatch.cli``. See docs/architecture.md.
"""

__version__ = "0.2.0"
