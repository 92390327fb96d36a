"""Entry module for `dramatiq workers.actors`: the worker process's composition root.

Importing it builds the broker from the environment, because that is how dramatiq's CLI
starts a worker; nothing else imports this module.
"""

from __future__ import annotations

import dramatiq

from ticketing import Settings
from workers.tasks import build_broker, declare_actors, make_runtime

settings = Settings.from_env()
broker = build_broker(settings)
dramatiq.set_broker(broker)
actors = declare_actors(broker, make_runtime(settings))
