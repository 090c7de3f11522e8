"""HAND, the hand-made-features baseline (hand.py): its flags are checked before any work."""

import input_helpers


def test_hand_refused_leaves_no_folder_and_checks_its_flags(tmp_path):
  bad = tmp_path / 'bad.npz'
  bad.write_bytes(b'not an npz')
  err = input_helpers.refused(input_helpers.run('-m', 'difcon_jax.hand', f'--corpus={tmp_path / "nope"}', f'--out={tmp_path / "out"}',
                      '--seed=-1', '--min_intensity=2', f'--experimental={bad}'))
  for flag in ('corpus', 'seed', 'min_intensity', 'experimental'):
    assert f'--{flag}=' in err
  assert not (tmp_path / 'out').exists()
