"""docs/HANDSHAKES.md still tells the truth: regenerate the tour against the real daemon and
compare, after normalising what differs between runs (ISNs, timestamps, synack's ephemeral
ports). Regenerate the file with scripts/handshakes.sh when this fails for a good reason."""

import difflib
import subprocess
import sys

import pytest

import harness
from conftest import synack_binary

sys.path.insert(0, str(harness.REPO_ROOT / "scripts"))
import handshakes  # noqa: E402

# The kernel's clients time their segments as they like (now and then a FIN goes out twice);
# one of a few runs matches. Each run gets a fresh network namespace, so the fixed client ports
# of the tour are not held by the previous run's TIME-WAIT.
ATTEMPTS = 3


@pytest.mark.kernel_differs("the tour is of synack's own behaviour")
def test_the_tour_of_the_handshakes_matches_what_synack_does(tmp_path):
    doc = harness.REPO_ROOT / "docs" / "HANDSHAKES.md"
    want = handshakes.normalise(doc.read_text())
    diff = ""
    for attempt in range(ATTEMPTS):
        out = tmp_path / f"run{attempt}.md"
        run = subprocess.run(
            ["unshare", "-n", "--", sys.executable, str(harness.REPO_ROOT / "scripts" /
             "handshakes.py"), "--binary", str(synack_binary()), "--out", str(out)],
            capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        got = handshakes.normalise(out.read_text())
        if got == want:
            return
        diff = "\n".join(difflib.unified_diff(want.splitlines(), got.splitlines(),
                                              "docs/HANDSHAKES.md", "regenerated", lineterm=""))
    pytest.fail(f"docs/HANDSHAKES.md is stale (run scripts/handshakes.sh):\n{diff}")
