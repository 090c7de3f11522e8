"""The paper's Figure 4 (difcon_jax.similarity): the block summary, the renderings, the command."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from difcon_jax import similarity
import input_helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_block_summary_by_hand():
  # Two structures, two views each. Similarities chosen so that one pattern's nearest other pattern is a view of
  # the other structure.
  structure = np.array([0, 0, 1, 1])
  sim = np.array([[1.0, 0.9, 0.2, 0.1],
                  [0.9, 1.0, 0.95, 0.0],
                  [0.2, 0.95, 1.0, 0.5],
                  [0.1, 0.0, 0.5, 1.0]])
  s = similarity.block_summary(sim, structure)
  assert np.isclose(s['within'], (0.9 + 0.9 + 0.5 + 0.5) / 4)  # the blocks without their diagonal
  assert np.isclose(s['between'], (0.2 + 0.1 + 0.95 + 0.0) * 2 / 8)
  assert np.isclose(s['contrast'], s['within'] - s['between'])
  # Nearest others: 0 -> 1 (same), 1 -> 2 (other), 2 -> 1 (other), 3 -> 2 (same).
  assert np.isclose(s['retrieval_top1'], 0.5)


def test_cosine_similarity_and_an_embedding_that_ignores_the_views():
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(10, 32))
  structure = np.repeat(np.arange(10), 4)
  invariant = centres[structure] + 0.01 * rng.normal(size=(40, 32))
  sim = similarity.cosine_similarity(invariant)
  assert np.allclose(np.diag(sim), 1.0) and np.allclose(sim, sim.T)
  assert np.isclose(sim[0, 1], invariant[0] @ invariant[1] / np.linalg.norm(invariant[0])
                    / np.linalg.norm(invariant[1]))
  good = similarity.block_summary(sim, structure)
  assert good['retrieval_top1'] == 1.0 and good['within'] > 0.99 and abs(good['between']) < 0.5
  noise = similarity.block_summary(similarity.cosine_similarity(rng.normal(size=(40, 32))), structure)
  assert noise['retrieval_top1'] < 0.5 and abs(noise['contrast']) < 0.1


def test_render_views_structure_major_and_reproducible(tiny_corpus):
  x, structure = similarity.render_views(tiny_corpus, phases=3, views=4, distribution='invariance_test',
                                         num_bins=2000, two_theta_max=120.0, seed=3)
  assert x.shape == (12, 2000) and np.isfinite(x).all()
  assert (structure == np.repeat(structure[::4], 4)).all() and len(set(structure)) == 3
  # The views of one structure differ (each its own draw of the experimental effects) ...
  assert not np.allclose(x[0], x[1])
  # ... and the set is the same whenever it is drawn again with the seed.
  again, structure_again = similarity.render_views(tiny_corpus, 3, 4, 'invariance_test', 2000, 120.0, seed=3)
  assert np.array_equal(x, again) and np.array_equal(structure, structure_again)


@pytest.mark.slow
def test_command_side_by_side(tiny_corpus, tiny_workdir, tmp_path):
  out = tmp_path / 'figure4.png'
  run = subprocess.run([sys.executable, '-m', 'difcon_jax.similarity', f'--corpus={tiny_corpus}',
                        f'--checkpoint={tiny_workdir}', f'--checkpoint={tiny_workdir}', '--label=a', '--label=b',
                        '--phases=4', '--views=3', '--batch_size=6', f'--out={out}'],
                       capture_output=True, text=True, cwd=ROOT)
  assert run.returncode == 0, run.stderr[-2000:]
  assert out.stat().st_size > 1000 and out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  meta = json.loads((tmp_path / 'figure4.json').read_text())
  assert [m['model'] for m in meta['models']] == ['a', 'b'] and meta['views'] == 3
  # One model shown twice gives the same numbers.
  assert meta['models'][0]['within'] == meta['models'][1]['within']
  assert 0 <= meta['models'][0]['retrieval_top1'] <= 1
  assert 'retrieval top-1' in run.stdout


def test_similarity_checks_flags_and_refuses_one_file_for_two_outputs(tmp_path):
  err = input_helpers.refused(input_helpers.run('-m', 'difcon_jax.similarity', f'--corpus={tmp_path / "nope"}', '--views=1',
                      f'--out={tmp_path / "fig.json"}', f'--checkpoint={tmp_path}'))
  for flag in ('corpus', 'views', 'checkpoint'):
    assert f'--{flag}=' in err
  assert 'the same file' in err and not (tmp_path / 'fig.json').exists()
