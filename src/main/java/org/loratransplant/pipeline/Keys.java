package org.loratransplant.pipeline;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigValue;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Stage keys: a hash of what a stage's output depends on. Config sections enter as canonical
 * JSON (keys sorted, values only: no comments, no origin of the file they came from), so naming
 * the conf by another path, reordering it or editing a comment does not change any key; records
 * and other values enter through {@code String.valueOf}.
 */
public final class Keys {
  private static final ObjectMapper CANONICAL = new ObjectMapper()
      .enable(SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS);

  private Keys() {}

  /** The 16-hex-digit key of the parts, in order. */
  public static String of(Object... parts) {
    try {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      for (Object p : parts) {
        String s = p instanceof Config c ? canonical(c) : p instanceof ConfigValue v
            ? canonical(v) : String.valueOf(p);
        md.update(s.getBytes(StandardCharsets.UTF_8));
        md.update((byte) 0);
      }
      return HexFormat.of().formatHex(md.digest()).substring(0, 16);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  /** A config section's values as JSON with sorted keys. */
  public static String canonical(Config c) {
    return canonical(c.root());
  }

  static String canonical(ConfigValue v) {
    try {
      return CANONICAL.writeValueAsString(sorted(v.unwrapped()));
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  private static Object sorted(Object o) {
    if (o instanceof Map<?, ?> m) {
      Map<String, Object> out = new TreeMap<>();
      m.forEach((k, v) -> out.put(String.valueOf(k), sorted(v)));
      return out;
    }
    if (o instanceof List<?> l) {
      return l.stream().map(Keys::sorted).toList();
    }
    return o;
  }
}
