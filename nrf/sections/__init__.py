"""One module per book page: its `OPTIONS` (declared once), `run(cfg)` (the page's expensive work,
returning its record's results and tensors) and `verdicts(record)` (its claims, decided).

`nrf.records.get(SECTION, params)` resolves the options and finds or computes the record; the
notebooks in book/ render it. No section imports another: what two share lives in the core.
"""
