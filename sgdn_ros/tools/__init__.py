"""The top floor: the ``sgdn-ros`` command line, the demo and the benchmarks. Nothing in the
package imports from here."""
