"""The exports already in ``saved_models/`` (what ``make demo`` writes), checked as TF Serving
loads them: each one's warm-up records through the session loader and through
``tf.saved_model.load`` give the same answers. Skipped where nothing has been exported."""

import glob
import os

import pytest

from tasks.runner import export as export_lib
from tasks.runner import serving_check
from tests.tasks.export_checks import assert_loaders_agree

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPORTS = sorted(os.path.dirname(p) for p in
                 glob.glob(os.path.join(REPO, "saved_models", "*", "*", "saved_model.pb")))
LATEST = sorted({export_lib.latest_version_dir(os.path.dirname(p)) for p in EXPORTS})


@pytest.mark.skipif(not LATEST, reason="no exports in saved_models/ (run `make demo`)")
@pytest.mark.parametrize("export_dir", LATEST, ids=lambda p: os.path.relpath(p, REPO))
def test_saved_export_serves_the_same_through_both_loaders(export_dir):
    if not os.path.exists(os.path.join(export_dir, export_lib.WARMUP_FILE)):
        pytest.skip("exported without tensorflow-serving-api: no warm-up records")
    requests = dict(serving_check.read_warmup_requests(export_dir))
    assert "serving_default" in requests
    assert set(assert_loaders_agree(export_dir, requests)) == set(requests)
