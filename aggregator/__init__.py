"""aggregator: a topic-tracking news aggregator.

    fetch → parse → [fetch page → extract] → normalize
          → topics → quality → stories/related → store → export

`aggregator.pipeline` sequences those steps; the CLI and the scheduled jobs both call it.
"""

__version__ = "0.1.0"
