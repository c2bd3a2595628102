"""Unit tests of the policy: `python3 -m unittest` in this folder."""

import unittest

from policy import decide, parse_settings


def fates(tags, patches=2, minors=2):
    return {d.tag: (d.keep, d.reason) for d in decide(tags, patches, minors)}


class PolicyTest(unittest.TestCase):
    def test_keeps_the_newest_patches_of_the_last_minors(self):
        got = fates(["1.0.5", "1.1.0", "1.1.1", "1.1.2", "v1.2.0", "1.2.1", "0.9.9"])
        self.assertEqual(got["1.2.1"], (True, None))
        self.assertEqual(got["v1.2.0"], (True, None))
        self.assertEqual(got["1.1.2"], (True, None))
        self.assertEqual(got["1.1.1"], (True, None))
        self.assertEqual(got["1.1.0"], (False, "older patch of 1.1"))
        self.assertEqual(got["1.0.5"], (False, "minor 1.0 is not among the last 2"))
        self.assertEqual(got["0.9.9"], (False, "minor 0.9 is not among the last 2"))

    def test_versions_compare_as_numbers_across_majors(self):
        got = fates(["1.10.0", "1.9.3", "2.0.0", "1.2.0"], patches=1, minors=2)
        self.assertEqual([t for t, (k, _) in got.items() if k], ["1.10.0", "2.0.0"])

    def test_non_versions_and_prereleases_are_dropped_with_a_reason(self):
        got = fates(["latest", "1.2", "1.2.3+build", "01.2.3", "1.2.4-rc.1", "v1.2.3"])
        self.assertEqual(got["latest"][1], "not a version (v1.2.3 or 1.2.3, optionally -pre)")
        self.assertFalse(got["1.2"][0])
        self.assertFalse(got["1.2.3+build"][0])
        self.assertFalse(got["01.2.3"][0])
        self.assertEqual(got["1.2.4-rc.1"], (False, "pre-release"))
        self.assertEqual(got["v1.2.3"], (True, None))

    def test_tags_naming_one_version_share_its_fate(self):
        got = fates(["v1.0.1", "1.0.1", "1.0.0", "1.0.2"], patches=2, minors=1)
        self.assertEqual(got["v1.0.1"], (True, None))
        self.assertEqual(got["1.0.1"], (True, None))
        self.assertEqual(got["1.0.0"], (False, "older patch of 1.0"))

    def test_every_tag_gets_one_decision_in_order(self):
        tags = ["b", "1.0.0", "a", "1.0.0"]
        self.assertEqual([d.tag for d in decide(tags, 2, 2)], tags)

    def test_settings(self):
        self.assertEqual(parse_settings([]), {"patches": 2, "minors": 2})
        self.assertEqual(parse_settings([("minors", "3")]), {"patches": 2, "minors": 3})
        with self.assertRaisesRegex(ValueError, "unknown setting `minor`"):
            parse_settings([("minor", "3")])
        with self.assertRaisesRegex(ValueError, "not a positive whole number"):
            parse_settings([("patches", "0")])
        with self.assertRaisesRegex(ValueError, "not a positive whole number"):
            parse_settings([("patches", "two")])


if __name__ == "__main__":
    unittest.main()
