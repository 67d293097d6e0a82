package org.loratransplant.cli;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** {@code jobs/lt <command> [options]}: the one entry point, locally and under spark-submit. */
public final class Main {
  private Main() {}

  static Map<String, Command> commands() {
    Map<String, Command> m = new LinkedHashMap<>();
    for (Command c : List.of(new GenerateCommand(), new LogprobsCommand(), new TrainLoraCommand(),
        new EvaluateCommand(), new TitokCommand(), new CompareCommand(), new SqlCommand(),
        new BenchRuntimeCommand(), new TransferCommand(), new CompressCommand(),
        new MigrateLayerCommand(), new FleetCommand(), new RandomModelCommand(),
        new CaLoraCommand())) {
      m.put(c.name(), c);
    }
    return m;
  }

  public static void main(String[] args) {
    System.exit(run(args));
  }

  /** Runs a command line; returns the exit status (0 ok, 1 failed, 2 bad usage). */
  public static int run(String[] args) {
    Map<String, Command> commands = commands();
    if (args.length == 0 || args[0].equals("--help") || args[0].equals("-h")
        || args[0].equals("help")) {
      System.out.println(overview(commands));
      return args.length == 0 ? 2 : 0;
    }
    Command c = commands.get(args[0]);
    if (c == null) {
      System.err.println("lt: unknown command '" + args[0] + "'\n\n" + overview(commands));
      return 2;
    }
    String[] rest = java.util.Arrays.copyOfRange(args, 1, args.length);
    try {
      return c.run(rest);
    } catch (UsageException e) {
      System.err.println("lt " + c.name() + ": " + e.getMessage()
          + "\n(run 'jobs/lt " + c.name() + " --help' for the options)");
      return 2;
    } catch (Exception e) {
      System.err.println("lt " + c.name() + ": " + e.getMessage());
      if (System.getenv("LT_DEBUG") != null) {
        e.printStackTrace();
      }
      return 1;
    }
  }

  static String overview(Map<String, Command> commands) {
    StringBuilder sb = new StringBuilder("usage: jobs/lt <command> [options]\n\ncommands:\n");
    for (Command c : commands.values()) {
      String s = c.summary();
      int dot = s.indexOf(". ");
      sb.append(String.format("  %-16s %s%n", c.name(), dot > 0 ? s.substring(0, dot + 1) : s));
    }
    sb.append("\nEach command has --help.");
    return sb.toString();
  }
}
