"""The top-level functions (``mloci.push`` …): the methods of one shared, lazily connected :class:`Client`."""

from __future__ import annotations

from mloci.client import default_client

_client = default_client()

validate = _client.validate
init = _client.init
push = _client.push
pull = _client.pull
inspect = _client.inspect
versions = _client.versions
diff = _client.diff
copy = _client.copy
export = _client.export
import_archive = _client.import_archive
tag = _client.tag
promote = _client.promote
rollback = _client.rollback
history = _client.history
gc = _client.gc
keygen = _client.keygen
sign = _client.sign
verify = _client.verify
sbom = _client.sbom
attest = _client.attest
verify_attestation = _client.verify_attestation
attach = _client.attach
discover = _client.discover
check_policy = _client.check_policy
run_tests = _client.run_tests
check_environment = _client.check_environment
build_image = _client.build_image
push_wheels = _client.push_wheels
pull_wheel = _client.pull_wheel
yank = _client.yank
reserve_projects = _client.reserve_projects
doctor = _client.doctor
login = _client.login
logout = _client.logout
