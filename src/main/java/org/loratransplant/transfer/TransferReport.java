package org.loratransplant.transfer;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Locale;

/** The per-module report of a transfer, as JSON and as a Markdown table. */
public final class TransferReport {
  public static final String JSON_FILE = "transfer_report.json";
  public static final String MARKDOWN_FILE = "transfer_report.md";
  private static final ObjectMapper JSON = new ObjectMapper();

  private TransferReport() {}

  public static String json(Transfer.Result r) {
    ObjectNode root = JSON.createObjectNode();
    root.put("method", r.method().cliName());
    root.put("source_model", r.sourceModel());
    root.put("target_model", r.targetModel());
    root.put("modules", r.modules().size());
    root.put("transferred", r.transferred());
    ArrayNode map = root.putArray("layer_map");
    for (int src : r.layerMap()) {
      map.add(src);
    }
    ArrayNode rows = root.putArray("rows");
    for (ModuleReport m : r.modules()) {
      ObjectNode o = rows.addObject();
      o.put("module", m.module());
      o.put("layer", m.layer());
      o.put("source_layer", m.sourceLayer());
      o.putArray("source_shape").add(m.sourceShape()[0]).add(m.sourceShape()[1]);
      o.putArray("target_shape").add(m.targetShape()[0]).add(m.targetShape()[1]);
      if (Double.isNaN(m.similarity())) {
        o.putNull("similarity");
      } else {
        o.put("similarity", m.similarity());
      }
      o.put("subspace_rank", m.subspaceRank());
      o.put("transferred", m.transferred());
      o.put("reason", m.reason());
      o.put("relative_norm", m.relativeNorm());
    }
    try {
      return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(root) + "\n";
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  public static String markdown(Transfer.Result r) {
    StringBuilder sb = new StringBuilder();
    sb.append("# transfer: ").append(r.method().cliName()).append("\n\n");
    sb.append("source `").append(r.sourceModel()).append("` -> target `")
        .append(r.targetModel()).append("`: ").append(r.transferred()).append(" of ")
        .append(r.modules().size()).append(" modules transferred.\n\n");
    sb.append("Layer map (target <- source, by relative depth):");
    for (int j = 0; j < r.layerMap().length; j++) {
      sb.append(j == 0 ? " " : ", ").append(j).append(" <- ").append(r.layerMap()[j]);
    }
    sb.append("\n\n| module | layer | source layer | source shape | target shape | similarity "
        + "| k | transferred | reason | norm ratio |\n");
    sb.append("|---|---:|---:|---|---|---:|---:|---|---|---:|\n");
    for (ModuleReport m : r.modules()) {
      sb.append(String.format(Locale.ROOT, "| %s | %d | %d | %s | %s | %s | %d | %s | %s | %.4f |%n",
          m.module(), m.layer(), m.sourceLayer(), Transfer.shape(m.sourceShape()),
          Transfer.shape(m.targetShape()),
          Double.isNaN(m.similarity()) ? "-" : String.format(Locale.ROOT, "%.4f", m.similarity()),
          m.subspaceRank(), m.transferred() ? "yes" : "no", m.reason().replace("|", "/"),
          m.relativeNorm()));
    }
    return sb.toString();
  }
}
