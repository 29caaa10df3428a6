"""The controller's OpenFlow codec against a real Open vSwitch: Swift's OVSLiveTests (handshake,
port description, echo, flows installed and read back with ovs-ofctl, a packet out that returns
as a packet in, an error for a malformed request), run here because it starts the switch."""
import os
import shutil
import subprocess
import unittest

from support import ROOT


@unittest.skipUnless(os.path.exists('/usr/sbin/ovs-vswitchd'), 'Open vSwitch is needed: apt-get install -y openvswitch-switch')
class OpenFlowTests(unittest.TestCase):
    def test_a_real_open_vswitch_speaks_our_openflow(self):
        swift = shutil.which('swift') or '/opt/swift/usr/bin/swift'
        # The release build's tests, as deploy/test.sh builds them (nothing to do after it).
        build = subprocess.run([swift, 'build', '-c', 'release', '--build-tests'], cwd=ROOT, capture_output=True,
                               text=True)
        self.assertEqual(build.returncode, 0, build.stdout[-3000:] + build.stderr[-3000:])
        tests = os.path.join(ROOT, '.build', 'release', 'distPackageTests.xctest')
        run = subprocess.run(
            [tests, '--testing-library', 'swift-testing', '--filter', 'OVSLiveTests'],
            cwd=ROOT, capture_output=True, text=True, timeout=300, env=dict(os.environ, DIST_LIVE_OVS='1'))
        out = run.stdout + run.stderr
        self.assertEqual(run.returncode, 0, out[-4000:])
        # It ran (a suite that skipped would pass too).
        self.assertIn('aRealOpenVSwitchSpeaksOurOpenFlow() passed', out, out[-4000:])
        self.assertNotIn('skipped', out)


if __name__ == '__main__':
    unittest.main()
