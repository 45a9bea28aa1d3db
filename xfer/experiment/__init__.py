"""One transfer experiment, end to end: source(s) -> [intermediates ->] target, against scratch.

Above :mod:`xfer.train`, :mod:`xfer.transfer` and :mod:`xfer.evaluate`: it wires market data,
the source cache, chains, DANN, candidate fitting and evaluation into one run
(:func:`xfer.experiment.run.run_transfer`); studies reuse its pieces per cell.
"""
