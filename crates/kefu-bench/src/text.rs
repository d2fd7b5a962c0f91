//! Made-up but plausible Chinese customer-support data: contact names,
//! subjects and first messages of about 100 characters. Deterministic for a
//! given seed, so two runs insert the same kind of text.

/// SplitMix64: tiny, fast and good enough for test data. Not `rand`, because
/// the data only has to look varied, and a fixed seed keeps runs comparable.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        self.next_u64() % n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "欧阳",
    "司马",
];

const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
    "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "子涵", "欣怡", "梓轩", "浩然", "雨桐",
    "思远", "嘉怡",
];

const TOPICS: &[&str] = &[
    "订单还没有发货",
    "退款一直没有到账",
    "收到的商品有破损",
    "发票信息填写错误",
    "会员积分没有到账",
    "无法登录账号",
    "快递显示已签收但没收到",
    "想修改收货地址",
    "优惠券无法使用",
    "申请售后换货",
];

const SENTENCES: &[&str] = &[
    "您好，我上周在你们的官网下了一个订单，",
    "到现在物流信息一直没有更新，",
    "客服电话打了好几次都没有人接，",
    "麻烦帮我查一下具体是什么原因，",
    "我这边比较着急，因为是送给家人的生日礼物，",
    "另外我想确认一下退款大概需要几个工作日，",
    "包装盒打开的时候里面的东西已经碎了，",
    "我已经拍了照片，可以发给你们看看，",
    "请问是不是需要我先把商品寄回去，",
    "运费是由我来承担还是由你们承担，",
    "我的会员等级是金卡，应该可以享受免费退换，",
    "昨天在手机应用里提交的申请显示审核失败，",
    "页面上也没有写明失败的原因，",
    "希望你们能尽快给我一个明确的答复，",
    "如果方便的话请直接打我的手机联系我，",
    "谢谢你们的帮助，辛苦了。",
];

pub fn name(rng: &mut Rng) -> String {
    let surname = rng.pick(SURNAMES);
    format!("{surname}{}", rng.pick(GIVEN))
}

pub fn subject(rng: &mut Rng) -> String {
    format!(
        "订单 {} {}",
        100_000 + rng.below(900_000),
        *rng.pick(TOPICS)
    )
}

/// About 100 Chinese characters (at least 100, at most ~125).
pub fn message(rng: &mut Rng) -> String {
    let mut s = String::with_capacity(400);
    let mut chars = 0;
    while chars < 100 {
        let part = *rng.pick(SENTENCES);
        chars += part.chars().count();
        s.push_str(part);
    }
    s
}

pub fn phone(rng: &mut Rng) -> String {
    format!("+86 13{:09}", rng.below(1_000_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_about_a_hundred_chars() {
        let mut rng = Rng::new(7);
        for _ in 0..100 {
            let n = message(&mut rng).chars().count();
            assert!((100..=130).contains(&n), "{n}");
        }
        assert!(name(&mut rng).chars().count() >= 2);
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = Rng::new(1);
        assert!((0..1000).all(|_| rng.below(5) < 5));
    }
}
