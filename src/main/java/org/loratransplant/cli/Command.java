package org.loratransplant.cli;

/** A {@code jobs/lt} subcommand. */
public interface Command {
  String name();

  String summary();

  /** Runs with the arguments after the command name; returns the exit status. */
  int run(String[] args) throws Exception;
}
