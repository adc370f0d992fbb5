"""The cosyvoice_node role with the espeak-ng CPU test engine on the shared Molecule Docker platform."""

import re


def test_cosyvoice_node_scenario(molecule_test):
    out = molecule_test("cosyvoice_node")
    assert "COSYVOICE_NODE VERIFY OK" in out, out[-3000:]
    # check mode after the converge and the idempotence run: nothing would change
    assert "cosyvoice_node > check: Executed: Successful" in out, out[-3000:]
    check = out.split("cosyvoice_node > check", 1)[1].split("cosyvoice_node > verify", 1)[0]
    recap = re.findall(r"^\S+ +: ok=\d+ .*$", check, re.M)
    assert recap, check[-3000:]
    assert all(" changed=0 " in line and " failed=0 " in line for line in recap), "\n".join(recap)
