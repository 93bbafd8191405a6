"""Agreement of the language stage with the language of each document's source.

Reads the audit records of a `sluice run` with only a language stage (output.audit = "matched",
so every document has one) on the real-text corpus of benches/real-corpus.sh, whose ids start
with the Debian package the text came from. Packages that name their language (fortunes-de,
manpages-ja, libreoffice-help-fr, ...) or are English documentation give the truth; the others
(multilingual help, mixed collections) are left out. Prints: documents judged, the share whose
identified language is the source's, the share of English ones kept as English, and per
non-English language the share taken for English.

Usage: python3 benches/language_accuracy.py OUT_DIR
"""
import collections
import json
import os
import sys

LANGUAGE_OF = {
    "fortunes-ru": "ru", "fortunes-de": "de", "fortunes-es": "es", "fortunes-it": "it",
    "fortunes-pl": "pl", "fortunes-cs": "cs",
    "libreoffice-help-fr": "fr", "libreoffice-help-de": "de", "libreoffice-help-es": "es",
    "libreoffice-help-en-us": "en",
    "manpages-ja": "ja", "manpages-de": "de", "manpages-fr": "fr", "manpages-es": "es",
    "manpages-it": "it", "manpages-pl": "pl", "manpages-ru": "ru", "manpages-pt-br": "pt",
    "manpages-nl": "nl",
    "fortunes": "en", "dict-gcide": "en", "dict-wn": "en", "debian-handbook": "en",
    "python3.11-doc": "en", "postgresql-doc-15": "en", "perl-doc": "en",
    "python-django-doc": "en", "linux-doc-6.1": "en",
}


def main(out_dir):
    judged = right = 0
    as_english = collections.Counter()
    per_language = collections.Counter()
    audit = os.path.join(out_dir, "audit")
    for name in sorted(os.listdir(audit)):
        with open(os.path.join(audit, name), encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                truth = LANGUAGE_OF.get(record["id"].split("/", 1)[0])
                if truth is None:
                    continue
                found = record["stages"][0]["language"]
                judged += 1
                right += found == truth
                per_language[truth] += 1
                as_english[truth] += found == "en"
    print(f"documents judged: {judged}")
    print(f"language right:   {right / judged:.4f}")
    print(f"English kept:     {as_english['en'] / per_language['en']:.4f}")
    for language in sorted(per_language):
        if language != "en":
            share = as_english[language] / per_language[language]
            print(f"  {language} ({per_language[language]} documents) taken for English: {share:.4f}")


if __name__ == "__main__":
    main(sys.argv[1])
