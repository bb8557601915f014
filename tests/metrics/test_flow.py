import numpy as np
import pytest

from cnntool.metrics.flow import endpoint_error, endpoint_errors


def test_endpoint_error_against_a_hand_count():
    truth = np.zeros((2, 3, 2))
    flow = np.zeros((2, 3, 2))
    flow[0, 0] = (3, 4)       # 5 px off: an outlier
    flow[1, 2] = (0, 2)       # 2 px off
    score = endpoint_error(flow, truth)
    assert score.epe == pytest.approx(7 / 6)
    assert score.outliers == pytest.approx(1 / 6)
    assert score.pixels == 6
    assert endpoint_error(flow, truth, threshold=1.5).outliers == pytest.approx(2 / 6)


def test_the_mask_and_unknown_truth_leave_pixels_out_but_a_nan_estimate_counts():
    truth = np.zeros((2, 2, 2))
    flow = np.zeros((2, 2, 2))
    flow[0, 0] = (10, 0)
    valid = np.ones((2, 2), bool)
    valid[0, 0] = False
    assert endpoint_error(flow, truth, valid=valid) == (0.0, 0.0, 3)
    truth[1, 1] = np.inf
    assert endpoint_error(flow, truth, valid=valid).pixels == 2
    flow[0, 1] = np.nan
    score = endpoint_error(flow, truth, valid=valid)
    assert score.epe == np.inf and score.outliers == 0.5
    assert np.isnan(endpoint_error(flow, truth, valid=np.zeros((2, 2), bool)).epe)


def test_a_batch_is_scored_as_one_set_and_shapes_are_checked():
    truth = np.zeros((2, 4, 4, 2))
    flow = truth.copy()
    flow[1] = (1, 0)
    assert endpoint_error(flow, truth).epe == pytest.approx(0.5)
    assert endpoint_errors(flow, truth).shape == (2, 4, 4)
    with pytest.raises(ValueError):
        endpoint_error(flow[0], truth)
    with pytest.raises(ValueError):
        endpoint_error(flow, truth, valid=np.ones((4, 4), bool))
