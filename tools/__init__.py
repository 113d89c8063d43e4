"""Tools built on the armbus core: the ``armbus`` command, the demo, benchmarks, campaigns and generators.

Theory of operation
-------------------
This is the top layer. Its modules import the core (:mod:`armbus.bus`, :mod:`armbus.joints`,
:mod:`armbus.controller`, :mod:`armbus.hil`) and each other; nothing in the core imports them (a test checks it).

* :mod:`armbus.tools.cli`, :mod:`armbus.tools.commands`: the ``armbus`` command, its parser and its subcommands;
* :mod:`armbus.tools.demo`: ``armbus demo``, a virtual arm from discovery to e-stop;
* :mod:`armbus.tools.bench`: every benchmark, and ``armbus bench`` that runs them all;
* :mod:`armbus.tools.campaigns`: long runs that check a claim (soak, lossy chain, safety, fuzzing, gain sweep);
* :mod:`armbus.tools.gen`: generators (the test vectors, synthetic and replicated captures).
"""
