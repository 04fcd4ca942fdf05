"""Capacity search: the highest load a target sustains within its SLOs, found and proven.

``loadgen capacity SCENARIO --slo "p99 < 10ms"`` runs a sequence of steps, each a fresh
run of the scenario at one offered load (``loadgen.run.api.run``): grow geometrically until
a step breaks an SLO, bisect between the last passing and the first failing load, then
prove the answer (``search``). Each step is judged on its measured window only, after its
warm-up (``window``); steps are built and run by ``steps``, proven by ``proof``, kept in
``model`` (JSON ``kind: loadgen.capacity``) and shown by ``console``, ``page`` (HTML) and
``outputs`` (markdown, JUnit); ``compare`` gates one search's capacity against another's.
"""
