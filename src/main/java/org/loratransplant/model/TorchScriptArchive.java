package org.loratransplant.model;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

/**
 * Writes, in memory, the archive {@code torch.jit.save} would write for a module that holds no
 * tensors: one class's TorchScript source and the values of its plain attributes. PyTorch's own
 * loader ({@code torch::jit::load}, reached through DJL) compiles the source, so a model's whole
 * forward runs inside libtorch, one call from Java instead of one call per op.
 *
 * <p>The layout, as PyTorch's {@code PyTorchStreamReader} and {@code ScriptModuleDeserializer}
 * read it: a zip of uncompressed entries under one top-level folder holding {@code version},
 * {@code code/__torch__.py} (the class source), {@code constants.pkl} (an empty tuple) and
 * {@code data.pkl}, a protocol-2 pickle that builds the module object from a dict of its
 * attributes ({@code GLOBAL __torch__ Cls, EMPTY_TUPLE, NEWOBJ, {attr: value}, BUILD}).
 *
 * <p>Public for other packages' small scripts (the transfer package's linear algebra), with
 * {@link #source} and {@link #load} to read and load one.
 */
public final class TorchScriptArchive {
  /**
   * The file format version written: 3 is the one PyTorch produces for programs that use none of
   * the operators whose meaning changed later (integer {@code div}, {@code full}), which ours do
   * not.
   */
  private static final String FORMAT_VERSION = "3";

  private TorchScriptArchive() {}

  /**
   * The archive of class {@code __torch__.className} whose source is {@code source} and whose
   * attributes (Boolean, Integer, Long or Double values) are {@code attributes}; the source must
   * declare each of them.
   */
  public static byte[] write(String className, String source, Map<String, Object> attributes) {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (ZipOutputStream zip = new ZipOutputStream(bytes)) {
      String root = "model/";
      stored(zip, root + "version", (FORMAT_VERSION + "\n").getBytes(StandardCharsets.UTF_8));
      stored(zip, root + "code/__torch__.py", source.getBytes(StandardCharsets.UTF_8));
      stored(zip, root + "constants.pkl", new byte[] {(byte) 0x80, 2, ')', '.'});
      stored(zip, root + "data.pkl", modulePickle(className, attributes));
    } catch (IOException e) {
      throw new UncheckedIOException("writing a TorchScript archive in memory", e);
    }
    return bytes.toByteArray();
  }

  /** The protocol-2 pickle that makes a {@code __torch__.className} object from attributes. */
  static byte[] modulePickle(String className, Map<String, Object> attributes) {
    ByteArrayOutputStream p = new ByteArrayOutputStream();
    p.write(0x80); // PROTO 2
    p.write(2);
    ascii(p, "c__torch__\n" + className + "\n"); // GLOBAL: resolved against code/__torch__.py
    p.write(')'); // EMPTY_TUPLE
    p.write(0x81); // NEWOBJ
    p.write('}'); // EMPTY_DICT
    p.write('('); // MARK
    for (Map.Entry<String, Object> a : attributes.entrySet()) {
      byte[] key = a.getKey().getBytes(StandardCharsets.UTF_8);
      p.write('X'); // BINUNICODE
      p.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(key.length)
          .array());
      p.writeBytes(key);
      value(p, a.getKey(), a.getValue());
    }
    p.write('u'); // SETITEMS
    p.write('b'); // BUILD
    p.write('.'); // STOP
    return p.toByteArray();
  }

  private static void value(ByteArrayOutputStream p, String name, Object v) {
    if (v instanceof Boolean b) {
      p.write(b ? 0x88 : 0x89); // NEWTRUE / NEWFALSE
    } else if (v instanceof Integer || v instanceof Long) {
      p.write(0x8a); // LONG1 with 8 bytes, the form PyTorch's unpickler accepts for any int
      p.write(8);
      p.writeBytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN)
          .putLong(((Number) v).longValue()).array());
    } else if (v instanceof Double d) {
      p.write('G'); // BINFLOAT, big-endian
      p.writeBytes(ByteBuffer.allocate(8).order(ByteOrder.BIG_ENDIAN).putDouble(d).array());
    } else {
      throw new IllegalArgumentException("attribute '" + name + "': cannot pickle a "
          + (v == null ? "null" : v.getClass().getName()));
    }
  }

  /** The text of resource {@code name} beside class {@code owner} (a TorchScript source). */
  public static String source(Class<?> owner, String name) {
    try (java.io.InputStream in = owner.getResourceAsStream(name)) {
      if (in == null) {
        throw new IllegalStateException(name + " is missing from the classpath");
      }
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException("reading " + name, e);
    }
  }

  /**
   * Compiles and loads the module {@link #write} describes onto {@code device}, owned by a
   * manager that lives as long as the JVM: such modules hold no tensors, are few and are shared
   * by every thread. Compile errors surface as DJL's {@code EngineException}.
   */
  public static ai.djl.pytorch.engine.PtSymbolBlock load(String className, String source,
      Map<String, Object> attributes, ai.djl.Device device) {
    byte[] archive = write(className, source, attributes);
    ai.djl.pytorch.engine.PtNDManager owner =
        (ai.djl.pytorch.engine.PtNDManager) ai.djl.ndarray.NDManager.newBaseManager(device);
    try {
      return ai.djl.pytorch.jni.JniUtils.loadModule(owner,
          new java.io.ByteArrayInputStream(archive), true, false);
    } catch (IOException e) {
      throw new UncheckedIOException("loading the TorchScript module " + className, e);
    }
  }

  private static void stored(ZipOutputStream zip, String name, byte[] data) throws IOException {
    ZipEntry e = new ZipEntry(name);
    e.setMethod(ZipEntry.STORED);
    e.setSize(data.length);
    e.setCompressedSize(data.length);
    CRC32 crc = new CRC32();
    crc.update(data);
    e.setCrc(crc.getValue());
    zip.putNextEntry(e);
    zip.write(data);
    zip.closeEntry();
  }

  private static void ascii(ByteArrayOutputStream p, String s) {
    p.writeBytes(s.getBytes(StandardCharsets.US_ASCII));
  }
}
