"""Test support: doubles and builders shared by the test suite, imported as a normal package
(``from tests.support.controller import Rig``); fixtures stay in the ``conftest.py`` files.

- ``agents``     a scripted stand-in for the env (exact optimizer budgets), episode runner
- ``apis``       loopback HTTP servers speaking the carbon providers' documented JSON
- ``controller`` the replay deployment rig, a controllable policy
- ``fake_nvml``  a simulated NVML (MIG geometry, errors) for the manager and pool tests
- ``live``       services whose variants are cheap to spawn in worker processes
- ``published``  providers' published answer shapes (fixtures for the layout parsers)
"""
