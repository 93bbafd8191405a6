#!/usr/bin/env python3
"""TF-IDF + logistic regression on the split of benches/train-quality.sh: the baseline.

Usage: tfidf_lr.py TRAIN.jsonl TEST.jsonl POSITIVE_LABEL OUT.json

Word uni- and bigrams (scikit-learn's default token pattern, lowercased, sublinear tf, min_df 2),
L2-regularized logistic regression (C = 10, liblinear, class weights as in the data), trained on
the whole train file, scored on the whole test file; flagged when the positive class's probability
is at least 0.5, the threshold the classifier configs of the script use. Writes precision, recall
and F1 of the positive class and ROC AUC as JSON.
"""

import json
import sys

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score


def read(path):
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def main():
    train, test, positive, out = sys.argv[1:5]
    x_train, y_train = read(train)
    x_test, y_test = read(test)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    model = LogisticRegression(C=10.0, solver="liblinear", max_iter=1000)
    model.fit(vectorizer.fit_transform(x_train), [y == positive for y in y_train])
    scores = model.predict_proba(vectorizer.transform(x_test))[:, 1]
    truth = [y == positive for y in y_test]
    p, r, f1, _ = precision_recall_fscore_support(
        truth, scores >= 0.5, average="binary", zero_division=0
    )
    result = {"precision": p, "recall": r, "f1": f1, "roc_auc": roc_auc_score(truth, scores)}
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
