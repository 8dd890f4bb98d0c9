"""``python -m bench``: the suite (bench.cli); ``python -m bench sanity ...``: the quick run of
ours; ``python -m bench archive ...``: the archiver against the broker (bench/studies/archive_rate.py)."""
import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["sanity"]:
        from bench.sanity import main
        sys.exit(main(sys.argv[2:]))
    if sys.argv[1:2] == ["archive"]:
        from bench.studies.archive_rate import main
        sys.exit(main(sys.argv[2:]))
    from bench.cli import main
    sys.exit(main(sys.argv[1:]))
