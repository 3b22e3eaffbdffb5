"""GAN metrics (Fréchet distance, KID, classifier score, modes, label KL) and classifier
metrics, on seeded NumPy feature arrays with known answers."""
import numpy as np
import pytest
import scipy.linalg

from minigan import metrics as M


def random_cov(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# ---- Fréchet distance ------------------------------------------------------
def test_fd_of_a_set_against_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(300, 24)) * 3 + 1
    assert M.fd(x, x) == pytest.approx(0, abs=1e-8)
    assert M.fd(x.astype(np.float32), x.astype(np.float32)) == pytest.approx(0, abs=1e-6)


def test_fd_grows_monotonically_with_added_noise():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 16))
    noise = rng.normal(size=x.shape)
    values = [M.fd(x, x + s * noise) for s in (0, 0.05, 0.1, 0.2, 0.5, 1, 2, 4)]
    assert values[0] == pytest.approx(0, abs=1e-8)
    assert all(b > a for a, b in zip(values, values[1:])), values


def test_fd_closed_form_diagonal_gaussians():
    # commuting covariances: FD = |mu1 - mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.normal(size=7), rng.normal(size=7)
    a, b = rng.uniform(0.1, 3, 7), rng.uniform(0.1, 3, 7)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert M.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_fd_closed_form_non_commuting_2x2():
    # for 2x2 PSD products, tr sqrt(S1 S2) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2))
    s1 = np.array([[2.0, 0.9], [0.9, 1.0]])
    s2 = np.array([[0.5, -0.3], [-0.3, 1.5]])
    mu1, mu2 = np.array([1.0, -2.0]), np.array([0.5, 0.25])
    tr_sqrt = np.sqrt(np.trace(s1 @ s2) + 2 * np.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert M.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-10)


def test_fd_matches_scipy_sqrtm_on_random_covariances():
    rng = np.random.default_rng(3)
    for d in (1, 5, 13):
        s1, s2 = random_cov(rng, d), random_cov(rng, d)
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        ref = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real)
        assert M.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-8)


def test_fd_from_samples_approaches_the_gaussian_value():
    rng = np.random.default_rng(4)
    s1 = np.array([[1.0, 0.6, 0.0], [0.6, 1.0, 0.2], [0.0, 0.2, 0.5]])
    s2 = np.diag([2.0, 0.5, 1.5])
    mu1, mu2 = np.zeros(3), np.array([1.0, 0.0, -1.0])
    exact = M.frechet_distance(mu1, s1, mu2, s2)
    x = rng.multivariate_normal(mu1, s1, 50000)
    y = rng.multivariate_normal(mu2, s2, 50000)
    assert M.fd(x, y) == pytest.approx(exact, rel=0.03)


def test_fd_with_fewer_samples_than_features_is_finite():
    # singular covariances: the symmetric form never produces NaN or complex parts
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(10, 40)), rng.normal(size=(10, 40)) + 0.5
    assert M.fd(x, x) == pytest.approx(0, abs=1e-8)
    assert np.isfinite(M.fd(x, y)) and M.fd(x, y) > 0


def test_fd_rejects_bad_input():
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match='feature sizes differ'):
        M.fd(x, np.zeros((5, 4)))
    with pytest.raises(ValueError, match='2-D'):
        M.fd(np.zeros((5, 3, 2)), x)
    with pytest.raises(ValueError, match='NaN'):
        M.fd(np.full((5, 3), np.nan), x)


# ---- KID -------------------------------------------------------------------
def test_mmd2_unbiased_matches_the_double_sum_definition():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(7, 4)), rng.normal(size=(9, 4)) + 0.3
    k = lambda a, b: (a @ b / 4 + 1) ** 3          # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    yy = sum(k(y[i], y[j]) for i in range(9) for j in range(9) if i != j) / (9 * 8)
    xy = sum(k(x[i], y[j]) for i in range(7) for j in range(9)) / (7 * 9)
    assert M.mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kid_is_near_zero_for_two_splits_of_one_distribution():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2000, 32))
    same, spread = M.kid(x[:1000], x[1000:], subsets=20, subset_size=500, return_std=True)
    shifted = M.kid(x[:1000], x[1000:] + 0.5, subsets=20, subset_size=500)
    assert abs(same) < 3 * spread + 1e-12
    assert abs(same) < 0.02 * shifted
    assert M.kid(x[:1000], x[1000:] + 1.0, subsets=20, subset_size=500) > shifted > 0


def test_kid_estimate_is_unbiased():
    # many independent small draws from one distribution: the unbiased estimate averages to
    # 0 within its standard error, while keeping the diagonal (the biased V-statistic) is > 0
    rng = np.random.default_rng(8)
    unbiased, biased = [], []
    for _ in range(400):
        x, y = rng.normal(size=(2, 20, 8))
        unbiased.append(M.mmd2_unbiased(x, y))
        kxx, kyy, kxy = (M.polynomial_kernel(a, b) for a, b in ((x, x), (y, y), (x, y)))
        biased.append(kxx.mean() + kyy.mean() - 2 * kxy.mean())
    se = np.std(unbiased) / np.sqrt(len(unbiased))
    assert abs(np.mean(unbiased)) < 3 * se
    assert np.mean(biased) > 10 * se
    assert min(unbiased) < 0 < max(unbiased)


# ---- classifier score --------------------------------------------------------
@pytest.mark.parametrize('k', [2, 5, 10])
def test_classifier_score_of_uniform_one_hot_predictions_is_the_class_count(k):
    probs = np.eye(k)[np.random.default_rng(k).permutation(np.arange(40 * k) % k)]
    assert M.classifier_score(probs) == pytest.approx(k, rel=1e-12)


def test_classifier_score_is_one_without_diversity_or_confidence():
    one_class = np.tile([0.1, 0.7, 0.2], (50, 1))
    assert M.classifier_score(one_class) == pytest.approx(1, rel=1e-12)
    assert M.classifier_score(np.full((30, 4), 0.25)) == pytest.approx(1, rel=1e-12)


def test_classifier_score_matches_the_formula_on_random_probabilities():
    rng = np.random.default_rng(9)
    logits = rng.normal(size=(60, 6)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    py = p.mean(0)
    expected = np.exp(np.mean([np.sum(row * np.log(row / py)) for row in p]))
    assert M.classifier_score(p) == pytest.approx(expected, rel=1e-12)
    mean, std = M.classifier_score(p, splits=3, return_std=True)
    parts = [M.classifier_score(part) for part in np.array_split(p, 3)]
    assert mean == pytest.approx(np.mean(parts)) and std == pytest.approx(np.std(parts))


def test_classifier_score_rejects_logits():
    with pytest.raises(ValueError, match='softmax'):
        M.classifier_score(np.random.default_rng(0).normal(size=(5, 3)))


# ---- modes and label KL ----------------------------------------------------------
def test_mode_count_uses_the_one_percent_threshold():
    labels = np.r_[np.zeros(500), np.ones(480), np.full(11, 2), np.full(9, 3)].astype(np.int64)
    assert M.mode_count(labels, 10) == 3          # 1.1% counts, 0.9% does not
    assert M.mode_count(labels, 10, threshold=0.005) == 4
    assert M.mode_count(np.arange(1000) % 10, 10) == 10


def test_label_kl():
    rng = np.random.default_rng(10)
    real = rng.integers(0, 10, 5000)
    assert M.label_kl(real, real, 10) == pytest.approx(0, abs=1e-12)
    gen = rng.choice(10, 5000, p=np.r_[0.3, np.full(9, 0.7 / 9)])
    p, q = (np.bincount(a, minlength=10) + 0.5 for a in (real, gen))
    p, q = p / p.sum(), q / q.sum()
    assert M.label_kl(real, gen, 10) == pytest.approx(np.sum(p * np.log(p / q)), rel=1e-10)
    collapsed = np.zeros(5000, dtype=np.int64)          # one mode only: large but finite
    assert M.label_kl(real, collapsed, 10) > 5 * M.label_kl(real, gen, 10)
    assert np.isfinite(M.label_kl(real, collapsed, 10))
    with pytest.raises(ValueError, match='outside'):
        M.label_kl(real, np.full(3, 10), 10)


# ---- classification -------------------------------------------------------------
def test_confusion_matrix_and_single_label_scores():
    true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    pred = np.array([0, 1, 0, 1, 1, 2, 0, 2, 1])
    cm = M.confusion_matrix(true, pred, 4)
    np.testing.assert_array_equal(cm, [[2, 1, 0, 0], [0, 2, 0, 0], [1, 1, 2, 0], [0, 0, 0, 0]])
    r = M.per_class_scores(true, pred, 4)
    np.testing.assert_allclose(r['precision'], [2 / 3, 2 / 4, 1, 0])
    np.testing.assert_allclose(r['recall'], [2 / 3, 1, 2 / 4, 0])
    np.testing.assert_allclose(r['f1'], [2 / 3, 2 / 3, 2 / 3, 0])
    assert r['micro_f1'] == pytest.approx(6 / 9)          # single-label micro F1 is accuracy


def test_multilabel_scores_and_threshold():
    probs = np.array([[0.9, 0.2, 0.6], [0.4, 0.8, 0.7], [0.7, 0.45, 0.1], [0.1, 0.55, 0.3]])
    targets = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 0], [0, 1, 1]])
    r = M.multilabel_scores(probs, targets, threshold=0.5)
    # class 0: pred {0, 2}, true {0, 1}; class 1: pred {1, 3}, true {1, 2, 3}; class 2: pred {0, 1}, true {0, 3}
    np.testing.assert_allclose(r['precision'], [1 / 2, 1, 1 / 2])
    np.testing.assert_allclose(r['recall'], [1 / 2, 2 / 3, 1 / 2])
    np.testing.assert_allclose(r['f1'], [1 / 2, 4 / 5, 1 / 2])
    np.testing.assert_array_equal(r['support'], [2, 3, 2])
    low = M.multilabel_scores(probs, targets, threshold=0.3)
    assert np.all(low['recall'] >= r['recall']) and low['recall'][1] == 1
    logits = np.log(probs / (1 - probs))
    same = M.multilabel_scores(logits, targets, threshold=0.5, from_logits=True)
    np.testing.assert_allclose(same['f1'], r['f1'])
    assert 'macro avg' in M.format_scores(r, ['a', 'b', 'c'])


def test_confusion_matrix_png(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(11)
    cm = M.confusion_matrix(rng.integers(0, 5, 100), rng.integers(0, 5, 100), 5)
    path = M.save_confusion_matrix(cm, tmp_path / 'cm.png', ['zero', 'one', 'two', 'three', 'four'])
    img = np.asarray(Image.open(path).convert('RGB'))
    assert img.shape[0] > 5 * 30 and img.shape[1] > 5 * 30
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 5          # shaded cells and text, not blank
    with pytest.raises(ValueError, match='class names'):
        M.save_confusion_matrix(cm, tmp_path / 'x.png', ['a', 'b'])
