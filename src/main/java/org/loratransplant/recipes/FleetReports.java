package org.loratransplant.recipes;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import java.util.Map;

/** {@code fleet_report.md}: a row per adapter, the job's verdict and where the time went. */
final class FleetReports {
  private FleetReports() {}

  static String markdown(FleetJob.Plan plan, ArrayNode rows, int ok, int failed, boolean fails,
      Map<String, Double> phases) {
    StringBuilder sb = new StringBuilder("# Fleet migration to ").append(plan.target())
        .append("\n\n").append(ok).append(" ok, ").append(failed).append(" failed of ")
        .append(rows.size()).append(" adapters (the job fails when all fail or more than ")
        .append(String.format("%.0f %%", 100 * plan.maxFailedFraction()))
        .append(" do: ").append(fails ? "it fails" : "it passes").append(").\n\n")
        .append("Exact match on each task's test split, [95 % interval]; gain = transplanted - "
            + "vanilla, paired bootstrap over the test items.\n\n")
        .append("| adapter | task | method | status | n | vanilla | transplanted | gain | expert "
            + "| seconds per stage | error |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (JsonNode r : rows) {
      sb.append("| ").append(r.path("adapter").asText()).append(" | ")
          .append(r.path("task").asText("—")).append(" | ").append(r.path("method").asText())
          .append(" | ").append(r.path("status").asText()).append(" | ")
          .append(r.has("n") ? r.get("n").asText() : "—").append(" | ")
          .append(score(r.path("vanilla").path("exact_match"))).append(" | ")
          .append(score(r.path("transplanted").path("exact_match"))).append(" | ")
          .append(gain(r.path("exact_match_gain"))).append(" | ")
          .append(score(r.path("expert").path("exact_match"))).append(" | ");
      StringBuilder secs = new StringBuilder();
      r.path("stage_seconds").fields().forEachRemaining(e -> secs.append(secs.isEmpty() ? ""
          : ", ").append(e.getKey()).append(String.format(" %.1f", e.getValue().asDouble())));
      sb.append(secs.isEmpty() ? "—" : secs).append(" | ")
          .append(r.path("error").isNull() || r.path("error").isMissingNode() ? ""
              : r.path("error").asText().replace("|", "\\|").replace("\n", " "))
          .append(" |\n");
    }
    sb.append("\nJob phases (this invocation):");
    phases.forEach((k, v) -> sb.append(String.format(" %s %.1f s;", k, v)));
    sb.setLength(sb.length() - 1);
    sb.append(".\n");
    return sb.toString();
  }

  private static String score(JsonNode m) {
    return m.isMissingNode() || m.isNull() ? "—" : String.format("%.3f [%.3f, %.3f]",
        m.path("value").asDouble(), m.path("ci95_lo").asDouble(), m.path("ci95_hi").asDouble());
  }

  private static String gain(JsonNode g) {
    return g.isMissingNode() ? "—" : String.format("%+.3f [%+.3f, %+.3f]",
        g.path("value").asDouble(), g.path("ci_low").asDouble(), g.path("ci_high").asDouble());
  }
}
