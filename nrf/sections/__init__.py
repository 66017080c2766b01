"""One module per book section: `run(...)` does the section's expensive work and fills the store.

The notebooks in book/ call these, then render; tests and GPU runs call them without Jupyter.
"""
