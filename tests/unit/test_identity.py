"""The plugin's job identities: branch-api's NameMangler against every vector of branch-api's own
NameManglerTest, and the directory paths and names the plugin derives from them."""

from __future__ import annotations

import pytest

from harvester.sei.identity import mangle, plugin_identity

# branch-api's src/test/java/jenkins/branch/NameManglerTest.java, every assertion.
VECTORS = {
    # safeNames
    "foo": "foo",
    "foo-bar": "foo-bar",
    "foo bar": "foo-bar.074vf0",
    "foo/bar": "foo-bar.nj9av9",
    "foo\\bar": "foo-bar.730n59",
    # reservedNames
    ".": "0-.tkvgu3",
    "..": "0--.mpdh40",
    "con": "con.lkb1gc",
    "prn": "prn.n7ievs",
    "aux": "aux.75carl",
    "nul": "nul.3r8i6h",
    "com1": "com1.k0564q",
    "com2": "com2.ni698t",
    "com3": "com3.8ad2lm",
    "com4": "com4.j2s67g",
    "com5": "com5.8fdiog",
    "com6": "com6.v0rf0v",
    "com7": "com7.v5tsfp",
    "com8": "com8.o02opt",
    "com9": "com9.3bmuo4",
    "lpt1": "lpt1.cstki2",
    "lpt2": "lpt2.136d1i",
    "lpt3": "lpt3.cvdm8e",
    "lpt4": "lpt4.upc9bu",
    "lpt5": "lpt5.u2mmru",
    "lpt6": "lpt6.n50rnj",
    "lpt7": "lpt7.9eh7vi",
    "lpt8": "lpt8.gm9r02",
    "lpt9": "lpt9.55srnr",
    # slashNames
    "foo/bar/fu manchu": "foo-bar-fu-manchu.k630nd",
    "foo/bar/fu manchu/1": "foo-bar-fu-manchu-1.vgnr4j",
    "foo/bar/fu manchu/12": "foo-bar-fu-manchu-12.6urklv",
    "foo/bar/fu manchu/123": "foo-bar-fu-manchu-123.nap1h9",
    "foo/bar/fu manchu/1234": "foo-bar-fu-manchu-1234.kstl5e",
    "foo/bar/fu manchu/12345": "foo-bar-fu-manchu-12345.i2apnp",
    "foo/bar/fu manchu/123456": "foo-bar-fu-manchu-123456.8vabkm",
    "foo/bar/fu manchu/1234567": "foo-bar-fu-manchu-1234567.5h1u4c",
    "foo/bar/fu manchu/12345678": "foo-bar-fu-m.vrohpg.chu-12345678",
    "foo/bar/fu manchu/123456789": "foo-bar-fu-m.403j04.hu-123456789",
    "foo/bar/fu manchu/1234567890": "foo-bar-fu-m.jrvb2f.u-1234567890",
    "foo/bar/fu manchu/1234567890a": "foo-bar-fu-m.1dcfvj.-1234567890a",
    "foo/bar/fu manchu/1234567890ab": "foo-bar-fu-m.mdl920.1234567890ab",
    "foo/bar/fu manchu/1234567890abc": "foo-bar-fu-m.aql4gn.234567890abc",
    "foo/bar/fu manchu/1234567890abce": "foo-bar-fu-m.bt3j2r.34567890abce",
    "foo/bar/fu manchu/1234567890abcef": "foo-bar-fu-m.jjum74.4567890abcef",
    "foo/bar/fu manchu/1234567890abcefg": "foo-bar-fu-m.vddees.567890abcefg",
    # longNames
    "cafebabedeadbeefcafebabedeadbeef": "cafebabedeadbeefcafebabedeadbeef",
    "cafebabedeadbeefcafebabedeadbeefcafebabedeadbeef": "cafebabed.98h82o58mhfo.edeadbeef",
    "cafebabedeadbeefcafebabeDeadbeefcafebabedeadbeef": "cafebabed.a67pve49oi0n.edeadbeef",
    "cafebabedeadbeefcafebabedeadbeef1": "cafebabedead.dfcoms.abedeadbeef1",
    "cafebabedeadbeefcafebabedeadbeef2": "cafebabedead.m0u50r.abedeadbeef2",
    # nonSafeNames
    "Is maith liom criospaí": "Is-maith-liom-criospa_ed.0g5uh9",
    "Ich liebe Fußball": "Ich-liebe-Fu_dfball.fp53tq",
    "我喜欢披萨": "0_62_11_55_9.f9c1g4._62_ab_84_28",
    "特征/新": "0_72_79_5f_81-_65_b0.nt1m48",
    "특색/새로운": "0_d2_b9_c0_c.ps50ht._b8_5c_c6_b4",
    "gné/nua": "gn_e9-nua.updi5h",
    "característica/nuevo": "caracter_edstica-nuevo.h5da9f",
    "особенность/новый": "0_04_3e_0.n168ksdsksof._4b_04_39",
    # spain
    "Espana": "Espana",
    "España": "Espa_f1a.9jabqu",
    "Espa\u006e\u0303a": "Espan_03_03a.eqqe01",
    # ireland
    "Eireann": "Eireann",
    "Éireann": "0_c9ireann.giuvlt",
    "E\u0301ireann": "E_03_01ireann.0qtq11",
}


@pytest.mark.parametrize(("name", "expected"), VECTORS.items())
def test_name_mangler_vectors(name: str, expected: str) -> None:
    assert mangle(name) == expected


MBP = "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
ORG = "jenkins.branch.OrganizationFolder"
FOLDER = "com.cloudbees.hudson.plugins.folder.Folder"


@pytest.mark.parametrize(
    ("full_name", "containers", "path", "normalized", "job", "branch"),
    [
        ("foo", [], "foo", "foo", "foo", None),
        # The plugin's patterns are greedy, as Java's are: the last /jobs/ splits.
        ("a/b/foo", [FOLDER, FOLDER], "a/jobs/b/jobs/foo", "a/b/foo", "foo", None),
        (
            "a/mbp/feature%2Flogin",
            [FOLDER, MBP],
            f"a/jobs/mbp/branches/{mangle('feature/login')}",
            f"a/mbp/{mangle('feature/login')}",
            "mbp",
            mangle("feature/login"),
        ),
        ("mbp/main", [MBP], "mbp/branches/main", "mbp/main", "mbp", "main"),
        (
            "org/my repo/release%2F1.0",
            [ORG, MBP],
            f"org/jobs/{mangle('my repo')}/branches/{mangle('release/1.0')}",
            f"org/{mangle('my repo')}/{mangle('release/1.0')}",
            mangle("my repo"),
            mangle("release/1.0"),
        ),
    ],
)
def test_plugin_identities(full_name, containers, path, normalized, job, branch) -> None:
    identity = plugin_identity(full_name, containers)
    assert (identity.full_name, identity.normalized) == (path, normalized)
    assert (identity.job_name, identity.branch_name) == (job, branch)
