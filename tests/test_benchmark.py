"""The benchmark in process: the record of the tiny config's train step and stylizer."""

import json
import types

import jax
import pytest

from conftest import trained_config
from shopstyle_jax import benchmark


def test_main_writes_the_record_of_the_real_step(trained_workdir, tmp_path, capsys, monkeypatch):
  del trained_workdir  # Trained first: the benchmark's step is its step, compiled.
  config = trained_config(None)
  output = tmp_path / 'record.json'
  monkeypatch.setattr(
    benchmark,
    'FLAGS',
    types.SimpleNamespace(
      config=config, steps=3, warmup=1, stylize_batch_size=None, stylize_steps=2, output=str(output)
    ),
  )
  benchmark.main(['benchmark'])
  record = json.loads(capsys.readouterr().out.splitlines()[-1])  # The last stdout line.
  assert json.loads(output.read_text()) == record
  assert (record['method'], record['batch_size'], record['image_size']) == ('paired', 8, 32)
  assert record['num_devices'] == jax.device_count() and record['backend'] == 'cpu'
  assert len(record['train_step_seconds_all']) == 3
  assert (
    min(record['train_step_seconds_all'])
    <= record['train_step_seconds']
    <= max(record['train_step_seconds_all'])
  )
  assert record['train_images_per_second'] == pytest.approx(8 / record['train_step_seconds'])
  assert record['stylize_batch_size'] == 8
  assert record['stylize_images_per_second'] == pytest.approx(8 / record['stylize_seconds'])
  # XLA's count of the step: at least the generator's forward convolutions.
  assert record['flops_per_train_step'] > 1e6
  assert record['mfu'] is None  # No peak FLOP/s for a CPU.
  assert 'cores)' in record['device']


def test_peak_flops_by_device_kind(monkeypatch):
  def devices_of_kind(kind):
    return lambda: [types.SimpleNamespace(device_kind=kind)] * 2

  monkeypatch.setattr(benchmark.jax, 'device_count', lambda: 2)
  monkeypatch.setattr(benchmark.jax, 'devices', devices_of_kind('NVIDIA H200'))
  assert benchmark.peak_flops('bfloat16') == 2 * 989e12
  # A longer name than the table's (the memory size appended) matches by prefix.
  monkeypatch.setattr(benchmark.jax, 'devices', devices_of_kind('TPU v5 lite podslice'))
  assert benchmark.peak_flops('float32') == 2 * 197e12
  monkeypatch.setattr(benchmark.jax, 'devices', devices_of_kind('Some new chip'))
  assert benchmark.peak_flops('float32') is None
