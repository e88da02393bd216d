"""Pin the rootdir and ini file when a plugin option's value was taken for a test path.

pytest picks its rootdir and ini from the command line *before* it loads plugins
from entry points, so in `pytest -m daily --ops-config /etc/opscheck/opscheck.toml`
the option is still unknown and `/etc/opscheck/opscheck.toml` counts as a test
path: the rootdir becomes `/etc/opscheck` and the suite's `pytest.ini` (markers,
testpaths, addopts) is lost. Once our option is known, the free arguments are
right; if they lead to an opscheck ini that pytest missed, adopt it the way pytest
would have, before any conftest loads. `-c` given by hand wins; so does `--rootdir`
for the rootdir (the ini is still found from the arguments, as pytest does).
"""

from __future__ import annotations

import pytest
from _pytest.config.findpaths import determine_setup


def repin(config: pytest.Config, args: list[str]) -> None:
    ns = config.known_args_namespace
    if ns.inifilename:
        return
    rootpath, inipath, inicfg, ignored = determine_setup(
        inifile=None,
        override_ini=ns.override_ini,
        args=ns.file_or_dir,
        rootdir_cmd_arg=ns.rootdir or None,
        invocation_dir=config.invocation_params.dir,
    )
    if inipath is None or inipath == config.inipath:
        return
    flag = getattr(inicfg.get("opscheck_suite"), "value", "")
    if str(flag).strip().lower() not in ("true", "1", "yes"):
        return
    default_cutdir = str(config.inipath.parent if config.inipath else config.rootpath)
    config._rootpath = rootpath
    config._inipath = inipath
    config._inicfg = inicfg
    config._ignored_config_files = ignored
    config._inicache.clear()
    config._parser.extra_info["rootdir"] = str(rootpath)
    config._parser.extra_info["inifile"] = str(inipath)
    if ns.confcutdir == default_cutdir:
        ns.confcutdir = str(inipath.parent)
    args[:] = [*config.getini("addopts"), *args]
