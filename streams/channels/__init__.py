"""The delivery channels, one module each with its sender and its renderer.

- :mod:`~newswatch.streams.channels.slack` (:class:`SlackNotifier`) with
  :mod:`~newswatch.streams.channels.slack_render` (Block Kit, Slack escaping);
- :mod:`~newswatch.streams.channels.email` (:class:`EmailNotifier`, ``EmailMessage``);
- :mod:`~newswatch.streams.channels.console` (:class:`ConsoleNotifier`, terminal lines);
- :mod:`~newswatch.streams.channels.text`: what the renderers share (cleaning, cutting, the
  evidence snippet, the "why" lines, link safety).

The ports they implement (``Notifier``, ``Receipt`` …) are in
:mod:`newswatch.streams.notifiers`.
"""
