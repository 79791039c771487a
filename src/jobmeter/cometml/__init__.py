"""Log what a job cost next to the model's metrics, in a Comet experiment.

```python
from jobmeter import cometml

cometml.log_run("latest")                     # a new experiment, from COMET_* settings
cometml.log_run(run_dir, experiment=exp)      # into your own training experiment
cometml.log_label_distribution(df["label"], "train_labels", experiment=exp)
```

Needs the ``comet`` extra (``pip install 'jobmeter[comet]'``); comet_ml is
imported only when one of these functions runs. Settings: ``COMET_API_KEY``
(or Comet's config file), ``COMET_PROJECT_NAME``, ``COMET_WORKSPACE``, and
``COMET_OFFLINE_DIRECTORY`` for offline mode (archives that ``comet upload``
sends later). Without a key and without offline mode, or when Comet cannot be
reached, there is one warning (logger ``jobmeter``) and None: the job goes on.
See docs/cometml.md.
"""

from __future__ import annotations

from jobmeter._core.facade import publish
from jobmeter.cometml._log import log_label_distribution, log_run, start_experiment

__all__ = [
    "log_label_distribution",
    "log_run",
    "start_experiment",
]

publish(globals())
