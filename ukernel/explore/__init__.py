"""ukernel explore (issue 17): every interleaving of a program, its distinct outcomes, its
deadlocks with their wait-for graph, each replayable from its choice list.

search.py walks the choice tree (kernel/choice.py's choice points) by replaying
prefixes, with state caching; outcome.py groups what the runs ended in; jobs.py
spreads runs over processes; command.py is ``ukernel explore``. It may import
ukernel's public modules (api, abi, kernel.choice); services and the kernel never import it.
"""

from .outcome import Exploration
from .search import STRATEGIES, explore

__all__ = ["STRATEGIES", "Exploration", "explore"]
